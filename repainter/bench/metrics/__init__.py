"""Weight-free image metrics made and tuned for the bench's flat-coloured object scenes
(``lab_layout``, ``texture_energy``, ``region_match``; VALIDITY.md part b). Registered by
:func:`repainter.bench.register`; nothing is imported here."""
