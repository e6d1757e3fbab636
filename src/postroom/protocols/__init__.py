"""postroom.protocols"""
