// Command tokenserver is the token service of a distribution registry on loopback, as public registries
// run theirs (the Docker registry token authentication: the registry answers 401 with
// `WWW-Authenticate: Bearer realm=...,service=...,scope=...`, the client asks the realm for a token):
// anyone gets a pull token for any repository without credentials; a push token needs the credentials
// of -push-auth (HTTP basic), when given.
//
// Tokens are ES256 JWTs signed with a key made at start; its public half goes to the JWKS file -jwks,
// which the registry's `auth.token.jwks` names. Then the command after `--` (the registry) runs as a
// child that dies with this process (Linux parent-death signal), and this process exits with it. Every
// token issued is logged on stderr: `token: <who> <scope> granted <actions>`.
//
//	tokenserver -addr 127.0.0.1:PORT -jwks FILE -issuer ISSUER -service SERVICE [-push-auth USER:PASSWORD] -- COMMAND...
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const keyID = "tycho-test"

type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type claims struct {
	Issuer     string    `json:"iss"`
	Subject    string    `json:"sub"`
	Audience   string    `json:"aud"`
	Expiration int64     `json:"exp"`
	NotBefore  int64     `json:"nbf"`
	IssuedAt   int64     `json:"iat"`
	JWTID      string    `json:"jti"`
	Access     []*access `json:"access"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address of the token endpoint (/token)")
	jwksPath := flag.String("jwks", "", "file to write the JWKS of the signing key to")
	issuer := flag.String("issuer", "tycho-test-tokens", "the tokens' issuer (iss)")
	service := flag.String("service", "tycho-test-registry", "the registry's service name (aud)")
	pushAuth := flag.String("push-auth", "", "USER:PASSWORD needed for push tokens (default: anyone may push)")
	flag.Parse()
	if *jwksPath == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: tokenserver -jwks FILE [-addr A] [-issuer I] [-service S] [-push-auth U:P] -- COMMAND...")
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("tokenserver: ")
	// The parent-death signal fires when the thread that started the child ends: keep this one.
	runtime.LockOSThread()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, KeyID: keyID, Algorithm: string(jose.ES256), Use: "sig"}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*jwksPath, set, 0o644); err != nil {
		log.Fatal(err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: keyID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		log.Fatal(err)
	}

	http.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		who, mayPush := "anonymous", *pushAuth == ""
		if user, password, ok := r.BasicAuth(); ok {
			if *pushAuth != "" && subtle.ConstantTimeCompare([]byte(user+":"+password), []byte(*pushAuth)) != 1 {
				log.Printf("token: refused credentials of %q", user)
				w.Header().Set("WWW-Authenticate", `Basic realm="tycho-test-tokens"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"wrong credentials"}]}`, http.StatusUnauthorized)
				return
			}
			who, mayPush = user, true
		}
		if s := r.URL.Query().Get("service"); s != "" && s != *service {
			http.Error(w, "unknown service "+s, http.StatusBadRequest)
			return
		}
		var granted []*access
		for _, scope := range r.URL.Query()["scope"] {
			// repository:NAME:ACTIONS (NAME may hold no colon in a repository scope)
			parts := strings.Split(scope, ":")
			if len(parts) != 3 || parts[0] != "repository" {
				continue
			}
			var actions []string
			for _, a := range strings.Split(parts[2], ",") {
				if a == "pull" || (mayPush && (a == "push" || a == "delete")) {
					actions = append(actions, a)
				}
			}
			log.Printf("token: %s %s granted %s", who, scope, strings.Join(actions, ","))
			granted = append(granted, &access{Type: "repository", Name: parts[1], Actions: actions})
		}
		now := time.Now()
		jti := make([]byte, 8)
		_, _ = rand.Read(jti)
		payload, err := json.Marshal(claims{
			Issuer: *issuer, Subject: who, Audience: *service,
			Expiration: now.Add(5 * time.Minute).Unix(), NotBefore: now.Add(-time.Second).Unix(),
			IssuedAt: now.Unix(), JWTID: hex.EncodeToString(jti), Access: granted,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		signed, err := signer.Sign(payload)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		token, err := signed.CompactSerialize()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token": token, "access_token": token, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339),
		})
	})
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.Serve(listener, nil)) }()

	args := flag.Args()
	child := exec.Command(args[0], args[1:]...)
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := child.Start(); err != nil {
		log.Fatal(err)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-signals
		_ = child.Process.Signal(s)
	}()
	if err := child.Wait(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			os.Exit(exit.ExitCode())
		}
		log.Fatal(err)
	}
}
