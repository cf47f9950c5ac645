"""The generation flow and the logic around it, independent of HTTP and of the database."""
