"""The segprep command line: parses, calls the library, reports. Heavy imports happen inside commands."""
