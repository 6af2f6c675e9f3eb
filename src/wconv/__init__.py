"""wconv: weighted convolution (Cammarasana & Patanè, 2025), its models, data, density search and reports."""

__version__ = "0.1.0"
