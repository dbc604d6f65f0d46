"""What a person watching a call sees: the live terminal view, the end-of-call summary and the PNG figure."""
