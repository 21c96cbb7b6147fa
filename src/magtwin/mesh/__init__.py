"""magtwin.mesh"""
