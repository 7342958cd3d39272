"""lecun1989: LeCun et al. 1989, "Backpropagation Applied to Handwritten Zip Code Recognition", reproduced."""

__version__ = "0.1.0"
