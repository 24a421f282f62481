"""An EDI 2.0-style messaging backbone for Norwegian health messages."""
