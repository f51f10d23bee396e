"""Training data: annotation readers, per-stage samples, the packed store and its Dataset."""
