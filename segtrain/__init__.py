"""segtrain: DeepLabv3+ training, evaluation, prediction and export on segprep's TFRecords (TensorFlow 2 / Keras 3)."""
