"""The chief's gRPC channel: leases, TLS and a shared token.

KerasTuner's chief listens on an insecure port and its workers open
`grpc.insecure_channel` themselves. `DistributedOptions` holds what tfnas
adds, for the chief and the workers alike:

- a lease on each running trial: a worker keeps it by reporting while it
  trains; one silent for `lease_seconds` loses its trial to another worker;
- a bounded wait for the chief when a worker starts (`connect_timeout`);
- TLS: the chief serves a certificate and key, workers verify it with a CA
  file (a worker given only the certificate trusts it as self-signed);
- a shared token that every request must carry, read from a file or the
  `TFNAS_TOKEN` variable; it is never printed, logged or shown in a repr.

`client_channel` builds a worker's channel and `ServerAuthentication`
(a server interceptor) refuses the requests of a chief's callers that
lack the token.
"""

import dataclasses
import hmac
import os
import sys

import grpc

TOKEN_ENV = "TFNAS_TOKEN"
TOKEN_FILE_ENV = "TFNAS_TOKEN_FILE"
TLS_ENV = {"tls_cert": "TFNAS_TLS_CERT", "tls_key": "TFNAS_TLS_KEY", "tls_ca": "TFNAS_TLS_CA"}
TOKEN_HEADER = "authorization"
TUNER_ID_HEADER = "tfnas-tuner-id"
DEFAULT_LEASE_SECONDS = 120.0
DEFAULT_KEEPALIVE_SECONDS = 10.0
DEFAULT_CONNECT_TIMEOUT = 60.0


def log(message):
    """The chief's and workers' notes on the channel (stderr, one line)."""
    print(f"tfnas: {message}", file=sys.stderr, flush=True)


def _read_file(path, what, argument):
    flag = "--" + argument.replace("_", "-")
    try:
        with open(path, "rb") as file:
            content = file.read()
    except OSError as error:
        raise OSError(f"Cannot read the {what} {path} given as `{argument}` ({flag}): "
                      f"{error.strerror or error}.") from error
    if not content.strip():
        raise ValueError(f"The {what} {path} given as `{argument}` ({flag}) is empty.")
    return content


@dataclasses.dataclass(frozen=True)
class DistributedOptions:
    """How the chief and its workers talk: lease, timeouts, TLS and token.

    Args:
        lease_seconds: A running trial whose worker is silent this long is
            given to another worker (workers report every epoch and every
            `keepalive_seconds`, so this measures liveness, not trial
            length). The chief's value is the one that counts.
        keepalive_seconds: How often a worker reports while it trains.
        connect_timeout: How long a starting worker waits for the chief.
        tls_cert, tls_key: The chief's certificate and private key (PEM).
        tls_ca: The CA certificate (PEM) a worker verifies the chief's
            certificate with; defaults to `tls_cert` (self-signed).
        token_file: A file holding the shared token.
        token: The shared token itself (prefer `token_file` or the
            `TFNAS_TOKEN` environment variable).
        identity: The search's defining arguments (JSON-serializable dict).
            The chief publishes them; a worker whose own differ is refused
            with the differences listed. None skips the check.
    """

    lease_seconds: float = DEFAULT_LEASE_SECONDS
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    tls_cert: str = None
    tls_key: str = None
    tls_ca: str = None
    token_file: str = None
    token: str = dataclasses.field(default=None, repr=False)
    identity: dict = None

    def __post_init__(self):
        for name in ("lease_seconds", "keepalive_seconds", "connect_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Received an invalid value for `{name}`, expected a "
                                 f"positive number of seconds. Received: {name}={value!r}")
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("Received `tls_key` without `tls_cert`: the chief needs both "
                             f"(PEM files). Received: tls_key={self.tls_key!r}")
        if self.token is not None and self.token_file is not None:
            raise ValueError("Received both `token` and `token_file`: pass one.")

    @classmethod
    def from_environment(cls, environ=None, **overrides):
        """Options from `TFNAS_TOKEN`, `TFNAS_TOKEN_FILE`, `TFNAS_TLS_CERT`,
        `TFNAS_TLS_KEY` and `TFNAS_TLS_CA`; `overrides` that are not None win."""
        environ = os.environ if environ is None else environ
        values = {name: environ.get(variable) or None for name, variable in TLS_ENV.items()}
        values["token_file"] = environ.get(TOKEN_FILE_ENV) or None
        if values["token_file"] is None:
            values["token"] = environ.get(TOKEN_ENV) or None
        given = {k: v for k, v in overrides.items() if v is not None}
        if "token_file" in given or "token" in given:
            values.pop("token", None)
            values.pop("token_file", None)
        values.update(given)
        return cls(**values)

    def read_token(self):
        """The shared token as bytes, or None when there is none."""
        if self.token_file is not None:
            return _read_file(self.token_file, "token file", "token_file").strip()
        if self.token is not None:
            if not self.token.strip():
                raise ValueError(f"The token (`token` or {TOKEN_ENV}) is empty.")
            return self.token.strip().encode()
        return None

    def check_files(self):
        """Reads every file given, so that a missing one fails before any work."""
        self.read_token()
        for name, what in (("tls_cert", "TLS certificate"), ("tls_key", "TLS private key"),
                           ("tls_ca", "CA certificate")):
            if getattr(self, name) is not None:
                _read_file(getattr(self, name), what, name)

    @property
    def uses_tls(self):
        return self.tls_cert is not None or self.tls_ca is not None

    def describe(self):
        """How the channel is protected, for the chief's start-up line."""
        if self.tls_cert and self.read_token():
            return "TLS, token required"
        if self.tls_cert:
            return "TLS, no token: any client that trusts the certificate is served"
        if self.read_token():
            return "token required, unencrypted: keep it on a trusted network"
        return "unauthenticated gRPC: keep it on a trusted network"

    def server_credentials(self):
        """`grpc.ServerCredentials` for the chief, or None without TLS."""
        if self.tls_cert is None:
            return None
        if self.tls_key is None:
            raise ValueError(f"Received `tls_cert` ({self.tls_cert}) without `tls_key`: "
                             "the chief needs its private key too (--tls-key).")
        key = _read_file(self.tls_key, "TLS private key", "tls_key")
        cert = _read_file(self.tls_cert, "TLS certificate", "tls_cert")
        return grpc.ssl_server_credentials([(key, cert)])

    def channel_credentials(self):
        """`grpc.ChannelCredentials` for a worker, or None without TLS."""
        ca = self.tls_ca or self.tls_cert
        if ca is None:
            return None
        argument = "tls_ca" if self.tls_ca else "tls_cert"
        return grpc.ssl_channel_credentials(
            root_certificates=_read_file(ca, "CA certificate", argument))


class _Headers(grpc.UnaryUnaryClientInterceptor):
    """Adds the token and the worker's current name to every request."""

    def __init__(self, headers, tuner_id):
        self._headers = tuple(headers)
        self._tuner_id = tuner_id

    def intercept_unary_unary(self, continuation, details, request):
        metadata = (tuple(details.metadata or ()) + self._headers
                    + ((TUNER_ID_HEADER, str(self._tuner_id())),))
        details = _CallDetails(details.method, details.timeout, metadata,
                               details.credentials, details.wait_for_ready,
                               details.compression)
        return continuation(details, request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


# gRPC's default reconnection backoff grows to 120 s: a worker would find a
# restarted chief up to tens of seconds late. Retry at least every second.
RECONNECT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 250),
                     ("grpc.min_reconnect_backoff_ms", 250),
                     ("grpc.max_reconnect_backoff_ms", 1000)]


def client_channel(address, options, tuner_id):
    """A worker's channel to the chief at `address`: TLS when `options` say
    so, and the token and the worker's name (`tuner_id()`, called for each
    request) sent with every request."""
    credentials = options.channel_credentials()
    if credentials is None:
        channel = grpc.insecure_channel(address, options=RECONNECT_OPTIONS)
    else:
        channel = grpc.secure_channel(address, credentials, options=RECONNECT_OPTIONS)
    headers = []
    token = options.read_token()
    if token is not None:
        headers.append((TOKEN_HEADER, "Bearer " + token.decode()))
    return grpc.intercept_channel(channel, _Headers(headers, tuner_id))


def caller_tuner_id(context):
    """The worker name a tfnas client sent with a request, or None."""
    for key, value in context.invocation_metadata() or ():
        if key == TUNER_ID_HEADER:
            return value
    return None


class ServerAuthentication(grpc.ServerInterceptor):
    """Refuses every request that lacks the shared token, and logs it.

    The comparison takes constant time; the log names the caller's address
    and the method, never the token that was sent.
    """

    def __init__(self, token, log_refusal=None):
        self._expected = ("Bearer " + token.decode()).encode()
        self._log = log_refusal or (lambda message: log(message))

    def intercept_service(self, continuation, handler_call_details):
        sent = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == TOKEN_HEADER:
                sent = value.encode() if isinstance(value, str) else value
        if hmac.compare_digest(sent, self._expected):
            return continuation(handler_call_details)
        method = handler_call_details.method
        reason = "a wrong token" if sent else "no token"

        def refuse(request, context):
            self._log(f"refused a request to {method} from {context.peer()}: {reason}")
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          f"the chief refused the request: {reason}. Give workers the "
                          f"chief's token (--token-file or {TOKEN_ENV}).")

        return grpc.unary_unary_rpc_method_handler(refuse)
