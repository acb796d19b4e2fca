"""segprep: prepare semantic-segmentation datasets as DeepLab-compatible sharded TFRecords."""
