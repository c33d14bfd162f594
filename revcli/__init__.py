"""revcli: experiments for predicting the revenue of a website session."""

__version__ = "0.1.0"
