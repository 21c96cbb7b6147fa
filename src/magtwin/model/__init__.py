"""magtwin.model"""
