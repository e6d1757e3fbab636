"""postroom.servers.imap"""
