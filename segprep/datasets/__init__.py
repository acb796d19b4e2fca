"""Dataset layout adapters: each turns a folder in a known layout into named splits of samples.

Adapters only find files and read list files; they never decode anything. What a sample's
label may contain is described by the adapter's LabelPolicy, and the writer enforces it.
"""
