//! `pods/portforward` over WebSocket (`v4.channel.k8s.io` / `portforward.k8s.io`, the protocol
//! kube's `Api::portforward` speaks): for the i-th requested port, channel `2i` carries data and
//! `2i+1` errors; the first frame the server sends on each carries the port as two little-endian
//! bytes. Each WebSocket is one connection per port, served by the container's HTTP server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::container::SimContainer;
use super::http;
use super::ws::{self, Ws};

/// Subprotocols served for port-forwarding, in preference order.
pub const PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "portforward.k8s.io"];

/// The message the kubelet writes on a port's error channel when nothing listens there.
pub fn refused_message(container: &SimContainer, port: u16) -> String {
    format!(
        "error forwarding port {port} to pod {}, uid : failed to connect to localhost:{port} inside the pod {}/{}: dial tcp4 127.0.0.1:{port}: connect: connection refused",
        container.pod_uid, container.namespace, container.pod_name
    )
}

/// Forward `ports` of `container` over `socket` until either side is done.
pub async fn run(container: Arc<SimContainer>, ports: Vec<u16>, socket: Ws) {
    let (mut sink, mut stream) = socket.split();
    let (from_pod_tx, mut from_pod_rx) = mpsc::channel::<(usize, Option<Bytes>)>(64);
    let mut writers: Vec<Option<WriteHalf<tokio::io::DuplexStream>>> = Vec::new();
    let mut open = 0usize;
    for (i, port) in ports.iter().enumerate() {
        let data_ch = (2 * i) as u8;
        let err_ch = data_ch + 1;
        let le = port.to_le_bytes();
        if sink.send(ws::frame(data_ch, &le)).await.is_err()
            || sink.send(ws::frame(err_ch, &le)).await.is_err()
        {
            return;
        }
        if container.listener(*port).is_none() {
            let msg = refused_message(&container, *port);
            let _ = sink.send(ws::frame(err_ch, msg.as_bytes())).await;
            writers.push(None);
            continue;
        }
        let (client_end, server_end) = tokio::io::duplex(64 * 1024);
        tokio::spawn(http::serve_connection(
            Arc::clone(&container),
            *port,
            server_end,
        ));
        let (mut rd, wr) = tokio::io::split(client_end);
        writers.push(Some(wr));
        open += 1;
        let tx = from_pod_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send((i, None)).await;
                        return;
                    }
                    Ok(n) => {
                        if tx
                            .send((i, Some(Bytes::copy_from_slice(&buf[..n]))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(from_pod_tx);

    let mut client_closed = false;
    while open > 0 {
        tokio::select! {
            m = from_pod_rx.recv() => match m {
                Some((i, Some(data))) => {
                    if sink.send(ws::frame((2 * i) as u8, &data)).await.is_err() {
                        client_closed = true;
                        break;
                    }
                }
                Some((i, None)) => {
                    open -= 1;
                    if let Some(w) = writers.get_mut(i) {
                        *w = None;
                    }
                }
                None => break,
            },
            msg = stream.next(), if !client_closed => match msg {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                    let ch = data[0] as usize;
                    if ch.is_multiple_of(2)
                        && let Some(Some(w)) = writers.get_mut(ch / 2)
                        && w.write_all(&data[1..]).await.is_err()
                    {
                        writers[ch / 2] = None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    client_closed = true;
                    // Half-close every connection to the container; let the servers finish.
                    for w in writers.iter_mut().flatten() {
                        let _ = w.shutdown().await;
                    }
                    break;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    if client_closed {
        // Deliver what the servers still write, briefly, then stop.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some((i, data)) = from_pod_rx.recv().await {
                if let Some(d) = data
                    && sink.send(ws::frame((2 * i) as u8, &d)).await.is_err()
                {
                    return;
                }
            }
        })
        .await;
        let _ = sink.send(ws::normal_close()).await;
        let _ = sink.close().await;
        return;
    }
    let _ = sink.send(ws::normal_close()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}
