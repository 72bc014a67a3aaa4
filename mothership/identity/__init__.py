"""Users of tenant clusters from OpenID Connect identity providers."""
