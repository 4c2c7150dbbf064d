"""Shared by the QM9 tests: the size of the QM9 subset they run on."""

N_SUBSET = 300  # the first molecules of QM9: 229 / 41 / 30 in Cormorant's split
