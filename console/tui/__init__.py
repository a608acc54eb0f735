"""The Textual console. The only package of wattlab that imports textual or rich."""
