"""postroom.checks"""
