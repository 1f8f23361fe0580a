"""Use cases: each composes the domain packages for one API operation."""
