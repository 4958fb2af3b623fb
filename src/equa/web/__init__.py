"""Server-rendered pages: sign in, my organizations, and an organization's settings with its Microsoft 365 section."""
