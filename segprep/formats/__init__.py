"""Byte-level formats: image headers, index PNGs, tf.train.Example and TFRecord framing.

Everything here is a plain function over bytes and arrays, with no TensorFlow import, so that
segprep commands start in a fraction of a second. The tests check each encoder against the
reference decoders (PIL, TensorFlow's own parsers).
"""
