"""postroom.outbound"""
