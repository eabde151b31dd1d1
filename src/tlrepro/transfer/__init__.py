"""Weight transfer between networks of different architectures (TLVFC, DPIAT).

The recipes and their report are in `tlrepro.transfer.recipes`; this file imports
nothing, so that the package's modules import each other in one direction.
"""
