"""magtwin.micromag"""
