"""What a run leaves on disk: the checkpoint format, how a user names a checkpoint, the rebuild
of a model from one, and the run folders that hold them."""
