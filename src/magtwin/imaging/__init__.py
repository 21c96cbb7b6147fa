"""magtwin.imaging"""
