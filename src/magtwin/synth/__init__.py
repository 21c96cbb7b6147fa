"""magtwin.synth"""
