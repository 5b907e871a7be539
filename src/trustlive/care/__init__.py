"""Care cases (高危专员): high-risk buyers followed by a care specialist until the case is closed."""
