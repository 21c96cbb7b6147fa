"""magtwin.reconstruct"""
