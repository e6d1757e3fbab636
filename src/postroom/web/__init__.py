"""postroom.web"""
