module github.com/natmap-go/natmap

go 1.26.0

require (
	github.com/pion/stun/v3 v3.1.7
	golang.org/x/sys v0.50.0
)

require (
	github.com/pion/dtls/v3 v3.1.5 // indirect
	github.com/pion/logging v0.2.4 // indirect
	github.com/pion/transport/v4 v4.1.0 // indirect
	github.com/wlynxg/anet v0.0.5 // indirect
	golang.org/x/crypto v0.48.0 // indirect
)
