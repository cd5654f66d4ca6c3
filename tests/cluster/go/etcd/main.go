// Command etcd is the stock etcd server (same entry point as upstream's
// go.etcd.io/etcd/v3 main.go).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
