"""What the command line and a sweep both need to read settings from flags: argument types
that refuse bad values in words, flags made of config dataclasses, and the train command's
arguments (``train_flags``)."""
