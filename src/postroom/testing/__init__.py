"""postroom.testing"""
