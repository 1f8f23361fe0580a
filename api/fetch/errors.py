"""The one error of a URL fetch, with the status winnow answers for it."""


class UrlFetchError(Exception):
    """Why an image URL could not be fetched, with the HTTP status winnow should answer.

    - 400: the URL is malformed or refused (scheme, credentials, host, non-public address,
      also for a redirect target) or its host does not resolve.
    - 413: the body is larger than ``max_bytes``.
    - 422: the server answered, but not with usable image bytes (HTTP error status, non-image
      content type, compressed body, too many redirects, redirect without ``Location``).
    - 502: the server could not be reached or spoke broken HTTP/TLS.
    - 504: the overall deadline passed (connect, TLS, headers and body together).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
