"""The console commands: ``lanes`` (inject, doctor), ``lanes-webhook`` (the server) and the controller's own
process; each parses its flags and calls into the rooms above.
"""
