"""postroom.servers"""
