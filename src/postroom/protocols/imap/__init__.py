"""postroom.protocols.imap"""
