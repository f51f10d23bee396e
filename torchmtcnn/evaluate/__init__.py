"""Evaluation: the WIDER FACE protocol, AP on any annotation source, landmark error."""
