"""A Nyckel-compatible face over winnow's use cases: Nyckel's SDK and REST clients work unchanged.

``protocol`` holds Nyckel's wire shapes, ``serving`` translates them to winnow's services, and
``api_router`` holds the routes (mounted under ``/nyckel``). winnow's own API and services never
import this package.
"""
