// The pause process of the real test node's pod sandboxes (tests/cluster/node.sh
// builds it and wraps it in the image containerd's sandbox_image names): no
// registry is reachable here, so registry.k8s.io/pause cannot be pulled.
module tycho.dev/tests/cluster/pause

go 1.24.0
