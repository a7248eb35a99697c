// etcd for the kind node's registry.k8s.io/etcd image, built from the Go module
// proxy at the version kubeadm expects (scripts/kind/tools builds it).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
