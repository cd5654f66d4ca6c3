"""The board in the chart (board.enabled), rendered with helm: read-only store credentials, a
restricted pod, and the two supported ways in, since the board has no sign-in of its own:
``kubectl port-forward`` only (the default: ClusterIP, a NetworkPolicy admitting nothing, Host
localhost/127.0.0.1 only), or oauth2-proxy in the pod (board.oauth2Proxy). The board's argv is
read by tycho's own argument parser, so what the chart asks for is what the board enforces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tycho.board import hosts
from tycho.cli import app

from . import _support as s
from .conftest import Scenario

Obj = dict[str, Any]


def board_of(scenario: Scenario) -> tuple[Obj, Obj, Obj]:
    """The board's Deployment, Service and NetworkPolicy."""
    objs = scenario.objects
    return (s.one(objs, "Deployment", "tycho-board"), s.one(objs, "Service", "tycho-board"),
            s.one(objs, "NetworkPolicy", "tycho-board"))


def containers(deployment: Obj) -> dict[str, Obj]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def answered_hosts(container: Obj) -> list[str]:
    """The Host names the board will answer, from its argv as `tycho board` parses it."""
    args = app.parser().parse_args(container["args"])
    return hosts.allowed(args.host, args.allowed_host)


def probe_hosts(container: Obj) -> set[str]:
    return {h["value"] for kind in ("livenessProbe", "readinessProbe")
            for h in container[kind]["httpGet"]["httpHeaders"] if h["name"] == "Host"}


def refusal(values: Obj, tmp_path: Path) -> str:
    proc = s.helm("template", "tycho", s.CHART, "--values", s.values_file(values, tmp_path, "bad"), check=False)
    assert proc.returncode != 0, values
    return proc.stderr


STORE = {"storage": {"defaultUrl": "s3://records/tycho"}}
PROXY = {"enabled": True, "host": "tycho.example.com", "existingSecret": "board-oauth",
         "oidcIssuerUrl": "https://login.example.com/realms/ml", "emailDomains": ["example.com"]}


def test_board_is_off_by_default(scenarios: dict[str, Scenario]) -> None:
    names = {o["metadata"]["name"] for o in scenarios["default"].objects}
    assert not any(n.endswith("-board") for n in names)


def test_board_runs_tycho_board_on_the_same_store_with_read_only_credentials(scenarios: dict[str, Scenario]) -> None:
    objs = scenarios["board"].objects
    board = s.one(objs, "Deployment", "tycho-board")
    container = board["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[0] == "board" and args[args.index("--store") + 1] == "s3://records/tycho"
    env = s.container_env(board)
    assert {env[k]["valueFrom"]["secretKeyRef"]["name"] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")} \
        == {"team-store-readonly"}
    assert env["TYCHO_INDEX_DIR"]["value"].startswith("/tmp/")  # the index lives in the writable emptyDir
    operator_image = s.one(objs, "Deployment", "tycho")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["image"] == operator_image


@pytest.mark.parametrize("name", ["board", "board-oauth2-proxy"])
def test_board_pods_are_restricted_with_uid_10001_and_no_service_account_token(
        name: str, scenarios: dict[str, Scenario]) -> None:
    spec = s.one(scenarios[name].objects, "Deployment", "tycho-board")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    assert spec["securityContext"]["runAsUser"] == 10001 and spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["allowPrivilegeEscalation"] is False and sc["runAsUser"] == 10001
    assert s.restricted_violations(spec) == []
    assert [v["mountPath"] for v in spec["containers"][0]["volumeMounts"]] == ["/tmp"]


def test_by_default_only_kubectl_port_forward_reaches_the_board(scenarios: dict[str, Scenario]) -> None:
    deployment, service, policy = board_of(scenarios["board"])
    board = containers(deployment)["board"]
    assert list(containers(deployment)) == ["board"]
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["ports"][0]["targetPort"] == "http"
    # no ingress at all (port-forward and probes come through the kubelet, which policies do not restrict)
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and policy["spec"]["ingress"] == []
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 443}  # DNS and the store
    # bound to every interface of the pod, it answers only the names port-forward sends
    assert board["args"][board["args"].index("--host") + 1] == "0.0.0.0" and "--allowed-host" not in board["args"]
    assert sorted(answered_hosts(board)) == ["127.0.0.1", "[::1]", "localhost"]
    for kind in ("livenessProbe", "readinessProbe"):
        assert board[kind]["httpGet"]["path"] == "/healthz" and board[kind]["httpGet"]["port"] == "http"
    assert probe_hosts(board) == {"localhost"}  # the kubelet would send the pod IP, which the board refuses


def test_behind_oauth2_proxy_the_proxy_is_the_only_way_in(scenarios: dict[str, Scenario]) -> None:
    deployment, service, policy = board_of(scenarios["board-oauth2-proxy"])
    found = containers(deployment)
    board, proxy = found["board"], found["oauth2-proxy"]
    # the board listens inside the pod only and answers the proxy's public host
    assert board["args"][board["args"].index("--host") + 1] == "127.0.0.1" and "ports" not in board
    assert "tycho.example.com" in answered_hosts(board)
    assert set(answered_hosts(board)) - {"tycho.example.com"} == {"127.0.0.1", "localhost"}  # in the pod only
    assert service["spec"]["ports"][0]["targetPort"] == "proxy"
    assert [p["name"] for p in proxy["ports"]] == ["proxy"] and proxy["ports"][0]["containerPort"] == 4180
    args = proxy["args"]
    assert "--upstream=http://127.0.0.1:8765/" in args and "--pass-host-header=true" in args
    assert "--redirect-url=https://tycho.example.com/oauth2/callback" in args
    assert {"--provider=oidc", "--oidc-issuer-url=https://login.example.com/realms/ml", "--email-domain=example.com",
            "--cookie-secure=true", "--reverse-proxy=true"} <= set(args)
    assert [a for a in args if a.startswith("--skip-auth")] == ["--skip-auth-route=GET=^/healthz$"]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in proxy["env"]}
    assert secrets == {f"OAUTH2_PROXY_{k.upper().replace('-', '_')}": {"name": "board-oauth", "key": k}
                       for k in ("client-id", "client-secret", "cookie-secret")}
    # the board's probes go through the proxy (checking both), with the Host the board answers
    assert {board[k]["httpGet"]["port"] for k in ("livenessProbe", "readinessProbe")} == {"proxy"}
    assert probe_hosts(board) == {"tycho.example.com"}
    # only the proxy's port is admitted, from the peers given; it may reach the sign-in provider
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 4180}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]
    assert any(p["port"] == 443 for r in policy["spec"]["egress"] for p in r["ports"])


def test_allowed_hosts_and_ingress_peers_admit_a_proxy_run_in_front(tmp_path: Path) -> None:
    peer = {"podSelector": {"matchLabels": {"app": "oauth2-proxy"}}}
    values = {**STORE, "board": {"enabled": True, "allowedHosts": ["tycho.example.com", "*.corp.example"],
                                 "ingressFrom": [peer]}}
    objs = s.render(s.values_file(values, tmp_path, "front"))
    board = s.one(objs, "Deployment", "tycho-board")["spec"]["template"]["spec"]["containers"][0]
    assert answered_hosts(board)[-2:] == ["tycho.example.com", "*.corp.example"]
    (rule,) = s.one(objs, "NetworkPolicy", "tycho-board")["spec"]["ingress"]
    assert rule == {"ports": [{"protocol": "TCP", "port": 8765}], "from": [peer]}


def test_without_network_policies_there_is_no_board_policy(tmp_path: Path) -> None:
    values = {**STORE, "board": {"enabled": True}, "networkPolicy": {"enabled": False}}
    assert not s.by_kind(s.render(s.values_file(values, tmp_path, "nonp")), "NetworkPolicy")


@pytest.mark.parametrize(("board", "says"), [
    ({"service": {"type": "LoadBalancer"}}, "board.service.type=LoadBalancer would publish the board"),
    ({"oauth2Proxy": {**PROXY, "host": ""}}, "needs board.oauth2Proxy.host"),
    ({"oauth2Proxy": {**PROXY, "existingSecret": ""}}, "needs board.oauth2Proxy.existingSecret"),
    ({"oauth2Proxy": {**PROXY, "emailDomains": []}}, "needs board.oauth2Proxy.emailDomains"),
    ({"oauth2Proxy": {**PROXY, "oidcIssuerUrl": ""}}, "needs board.oauth2Proxy.oidcIssuerUrl"),
    ({"allowedHosts": ["*"]}, "allowedHosts"),
    ({"allowedHosts": ["https://tycho.example.com"]}, "allowedHosts"),
    ({"allowedHosts": ["tycho.example.com:443"]}, "allowedHosts"),
    ({"oauth2Proxy": {**PROXY, "host": "https://tycho.example.com"}}, "host"),
    ({"oauth2Proxy": {**PROXY, "extraArgs": ["reverse-proxy"]}}, "extraArgs"),
])
def test_unsafe_or_incomplete_board_values_are_refused_naming_the_value(board: Obj, says: str,
                                                                         tmp_path: Path) -> None:
    assert says in refusal({**STORE, "board": {"enabled": True, **board}}, tmp_path)


def test_a_published_service_is_allowed_behind_the_proxy(tmp_path: Path) -> None:
    values = {**STORE, "board": {"enabled": True, "service": {"type": "LoadBalancer"}, "oauth2Proxy": PROXY}}
    service = s.one(s.render(s.values_file(values, tmp_path, "lb")), "Service", "tycho-board")
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["ports"][0]["targetPort"] == "proxy"


def test_board_service_selects_its_pods_only_and_it_has_no_rbac(scenarios: dict[str, Scenario]) -> None:
    objs = scenarios["board"].objects
    deployment, service, _ = board_of(scenarios["board"])
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert containers(deployment)["board"]["resources"]["limits"]["memory"]
    operator = s.one(objs, "Deployment", "tycho")
    op_selector = operator["spec"]["selector"]["matchLabels"].items()
    assert not op_selector <= deployment["spec"]["template"]["metadata"]["labels"].items()  # never overlap
    subjects = [sub for kind in ("RoleBinding", "ClusterRoleBinding") for b in s.by_kind(objs, kind)
                for sub in b.get("subjects", [])]
    assert not any("board" in sub["name"] for sub in subjects)  # no RBAC at all


def test_board_without_a_store_is_refused(tmp_path: Path) -> None:
    assert "board.enabled needs a store" in refusal({"board": {"enabled": True}}, tmp_path)
