"""A trained network at work: reading digits in images (images), the zip-code benchmark (benchmark),
how sure a reading is (confidence) and what must be rejected for a given error (rejection). No
pictures and no command line here: views/ draws, cli/ parses."""
