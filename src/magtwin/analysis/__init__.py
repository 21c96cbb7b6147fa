"""magtwin.analysis"""
