"""``cardiogate gateway mqtt-setup``: the files that lock the site's Mosquitto broker.

One run writes, into one directory:

* ``mosquitto.conf``: a TLS-only listener, no anonymous clients, the password and ACL files below;
* ``passwd``: one line per identity in Mosquitto's own PBKDF2-SHA512 format (``$7$``), the same a
  ``mosquitto_passwd`` run writes, so the broker needs nothing of ours;
* ``acl``: per identity, read access to the site and write access to exactly the topics of its role;
  a nurse or clinician identity may publish commands only on ``.../<patient>/commands/<itself>``;
* ``identities.json``: identity -> role, which the gateway reads to judge commands (no secrets);
* ``ca.crt``/``ca.key`` (the site's MQTT CA), ``server.crt``/``server.key`` (the broker's certificate);
* ``credentials/<identity>.password``: each identity's password, mode 0600, for that client only.

Re-running it with the same directory rotates: the CA and existing passwords are kept unless
asked otherwise (``rotate``, ``new_ca``), identities no longer listed lose their lines and
credentials, and the broker picks up the new password and ACL files on SIGHUP. Secrets are
written to files, never returned in messages or logged.

The passwords are 256-bit random tokens, so the hash's work factor is not what protects them;
the iteration count is modest because Mosquitto hashes on its single network thread at every
connect, where a slow hash would delay alarm delivery.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cardiogate.edge.mqtt_auth import IDENTITY, PATIENT_LEAVES, ROLES, Identities, Role

PBKDF2_ITERATIONS = 10_000
SALT_BYTES = 12  # what mosquitto_passwd uses
CONF, PASSWD, ACL, IDENTITIES = "mosquitto.conf", "passwd", "acl", "identities.json"
CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"
CREDENTIALS = "credentials"


# -- passwords ------------------------------------------------------------------------------------

def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """``$7$<iterations>$<salt>$<hash>``: Mosquitto's PBKDF2-HMAC-SHA512 password line format."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``$7$`` line (constant-time compare); other formats never match."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, expected = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2])), expected)


def new_password() -> str:
    return secrets.token_urlsafe(32)


def read_password_lines(text: str) -> dict[str, str]:
    """identity -> hash from a password file (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            name, hashed = line.split(":", 1)
            out[name] = hashed
    return out


def password_file_text(hashes_by_identity: Mapping[str, str]) -> str:
    return "".join(f"{name}:{hashed}\n" for name, hashed in sorted(hashes_by_identity.items()))


# -- ACL and broker config --------------------------------------------------------------------------

def acl_rules(prefix: str, site: str, identity: str, role: Role) -> list[tuple[str, str]]:
    """(access, topic) pairs for one identity: read the site, write only what the role publishes."""
    base = f"{prefix}/{site}"
    rules = [("read", f"{base}/#")]
    if role == "gateway":
        rules += [("write", f"{base}/+/{leaf}") for leaf in PATIENT_LEAVES]
        rules.append(("write", f"{base}/gateway/{identity}/events"))
    elif role in ("nurse", "clinician"):
        rules.append(("write", f"{base}/+/commands/{identity}"))
    elif role == "admin":
        rules.append(("write", f"{base}/gateway/+/commands/{identity}"))
    return rules


def acl_text(prefix: str, site: str, roles: Mapping[str, Role]) -> str:
    """Mosquitto ACL: nothing for anonymous clients; one ``user`` section per identity.

    Each identity's command topic names it literally (what a ``%u`` pattern would give), and only
    for the roles that may command: a ``pattern`` line would apply to every user, viewers included.
    """
    lines = [f"# cardiogate MQTT ACL for site {site}: one section per identity (roles in identities.json).",
             "# Anonymous clients get no access; the broker also refuses them (allow_anonymous false).", ""]
    for identity, role in sorted(roles.items()):
        lines.append(f"# role: {role}")
        lines.append(f"user {identity}")
        lines += [f"topic {access} {topic}" for access, topic in acl_rules(prefix, site, identity, role)]
        lines.append("")
    return "\n".join(lines)


def mosquitto_conf_text(out: Path, site: str, bind: str, port: int, run_as: str | None = None) -> str:
    out = out.resolve()
    lines = [f"# Mosquitto for cardiogate site {site}, written by `cardiogate gateway mqtt-setup`.",
             "# Re-run mqtt-setup to add identities or rotate passwords, then send mosquitto SIGHUP.",
             "per_listener_settings false", "allow_anonymous false",
             f"password_file {out / PASSWD}", f"acl_file {out / ACL}"]
    if run_as:
        lines.append(f"user {run_as}")
    lines += ["", f"listener {port} {bind}", f"cafile {out / CA_CERT}", f"certfile {out / SERVER_CERT}",
              f"keyfile {out / SERVER_KEY}", ""]
    return "\n".join(lines)


# -- the site's MQTT CA and the broker certificate ----------------------------------------------------

def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_ca(site: str, days: int = 3650) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"cardiogate MQTT CA {site}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(_now() + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def server_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", "::1", socket.gethostname(), *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_server_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: Iterable[str],
                      days: int = 825) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cardiogate MQTT broker")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5)).not_valid_after(_now() + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(server_names(hosts)), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


# -- writing the directory ------------------------------------------------------------------------------

def _write(path: Path, data: str | bytes, mode: int) -> None:
    """Atomic replace; the file is created with ``mode`` (never briefly more open than that)."""
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class MqttSetup:
    """What to write: the site, its identities with their roles, and where the broker listens."""

    site: str
    identities: Mapping[str, Role]
    out: Path
    prefix: str = "cardiogate"
    bind: str = "127.0.0.1"
    port: int = 8883
    hosts: Sequence[str] = ()
    rotate: frozenset[str] = frozenset()
    rotate_all: bool = False
    new_ca: bool = False
    run_as: str | None = None
    iterations: int = PBKDF2_ITERATIONS

    def __post_init__(self) -> None:
        if not IDENTITY.fullmatch(self.site) or not IDENTITY.fullmatch(self.prefix):
            raise ValueError("site and topic prefix must be plain names (letters, digits, . _ -)")
        if not self.identities:
            raise ValueError("give at least one identity (NAME:ROLE)")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        for name in self.identities:
            if not IDENTITY.fullmatch(name):
                raise ValueError(f"identity {name!r}: letters, digits, . _ - only (it becomes a topic level)")
        unknown = sorted(self.rotate - set(self.identities))
        if unknown:
            raise ValueError(f"cannot rotate {', '.join(unknown)}: not among the identities")


@dataclass(frozen=True, slots=True)
class SetupResult:
    """Paths written and what changed (names only: never a secret)."""

    out: Path
    conf: Path
    ca_cert: Path
    identities_file: Path
    credentials: dict[str, Path]
    issued: list[str] = field(default_factory=list)   # identities that got a new password
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    new_ca: bool = False


def parse_identity_args(values: Iterable[str]) -> dict[str, Role]:
    """``NAME:ROLE`` strings -> identities (ValueError on a bad one or a repeated name)."""
    out: dict[str, Role] = {}
    for value in values:
        name, sep, role = value.partition(":")
        if not sep:
            raise ValueError(f"--identity {value!r}: expected NAME:ROLE")
        if name in out:
            raise ValueError(f"--identity {name!r} given twice")
        matched = next((r for r in ROLES if r == role), None)
        if matched is None or not IDENTITY.fullmatch(name):
            raise ValueError(f"--identity {value!r}: NAME of letters, digits, . _ - and ROLE one of {', '.join(ROLES)}")
        out[name] = matched
    return out


def write_setup(plan: MqttSetup) -> SetupResult:
    """Write (or rewrite, rotating) the broker's files in ``plan.out``."""
    out = plan.out
    (out / CREDENTIALS).mkdir(parents=True, exist_ok=True)
    os.chmod(out / CREDENTIALS, 0o700)
    ca_key_path, ca_cert_path = out / CA_KEY, out / CA_CERT
    fresh_ca = plan.new_ca or not (ca_key_path.exists() and ca_cert_path.exists())
    if fresh_ca:
        ca_key, ca_cert = new_ca(plan.site)
        _write(ca_key_path, _key_pem(ca_key), 0o600)
        _write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    else:
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path}: not an EC private key")
        ca_key, ca_cert = loaded, x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    server_key, server_cert = issue_server_cert(ca_key, ca_cert, plan.hosts)
    _write(out / SERVER_KEY, _key_pem(server_key), 0o600)
    _write(out / SERVER_CERT, server_cert.public_bytes(serialization.Encoding.PEM), 0o644)

    old = read_password_lines((out / PASSWD).read_text(encoding="utf-8")) if (out / PASSWD).exists() else {}
    hashed: dict[str, str] = {}
    credentials: dict[str, Path] = {}
    issued, kept = [], []
    for name in sorted(plan.identities):
        cred = out / CREDENTIALS / f"{name}.password"
        credentials[name] = cred
        if name in old and cred.exists() and not plan.rotate_all and name not in plan.rotate:
            hashed[name] = old[name]
            kept.append(name)
            continue
        password = new_password()
        _write(cred, password + "\n", 0o600)
        hashed[name] = hash_password(password, iterations=plan.iterations)
        issued.append(name)
    removed = sorted(set(old) - set(plan.identities))
    for name in removed:
        (out / CREDENTIALS / f"{name}.password").unlink(missing_ok=True)
    _write(out / PASSWD, password_file_text(hashed), 0o600)
    _write(out / ACL, acl_text(plan.prefix, plan.site, plan.identities), 0o644)
    identities_path = out / IDENTITIES
    _write(identities_path, Identities(plan.site, dict(plan.identities)).to_json(), 0o644)
    conf = out / CONF
    _write(conf, mosquitto_conf_text(out, plan.site, plan.bind, plan.port, plan.run_as), 0o644)
    return SetupResult(out, conf, ca_cert_path, identities_path, credentials, issued, kept, removed, fresh_ca)


def read_credential(path: Path) -> str:
    """A password written by :func:`write_setup` (the trailing newline dropped)."""
    return path.read_text(encoding="utf-8").strip()


def _reachable(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind


def summary(plan: MqttSetup, result: SetupResult) -> str:
    """What was written and the gateway's settings for it: paths and names only, never a password."""
    gateway = sorted(name for name, role in plan.identities.items() if role == "gateway")
    lines = [f"mqtt-setup: site {plan.site}, broker files in {result.out}"
             + (" (new site MQTT CA)" if result.new_ca else " (site MQTT CA kept)"),
             f"  new passwords: {', '.join(result.issued) or '-'}; kept: {', '.join(result.kept) or '-'}; "
             f"removed: {', '.join(result.removed) or '-'}",
             *(f"  {name} ({plan.identities[name]}): {path}" for name, path in sorted(result.credentials.items())),
             f"  run: mosquitto -c {result.conf}   (running already: send it SIGHUP to reload passwords and ACL)"]
    for name in gateway:
        lines += ["", f"# gateway settings for {name} (gateway_id = \"{name}\", site = \"{plan.site}\"):",
                  "[mqtt]", f"host = \"{plan.hosts[0] if plan.hosts else _reachable(plan.bind)}\"",
                  f"port = {plan.port}",
                  f"topic_prefix = \"{plan.prefix}\"", f"username = \"{name}\"",
                  f"password_file = \"{result.credentials[name].resolve()}\"",
                  f"identities_file = \"{result.identities_file.resolve()}\"",
                  "[mqtt.tls]", f"ca_file = \"{result.ca_cert.resolve()}\""]
    return "\n".join(lines)
