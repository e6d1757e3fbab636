"""postroom.fetch"""
