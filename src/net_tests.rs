use super::*;

async fn pair() -> (TcpStream, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
    (listener.accept().await.unwrap().0, client)
}

#[tokio::test]
async fn accepted_sockets_get_nodelay_and_quickack() {
    let (server, _client) = pair().await;
    tune(&server);
    let sock = socket2::SockRef::from(&server);
    assert!(sock.tcp_nodelay().unwrap());
    assert!(sock.tcp_quickack().unwrap());
}

#[tokio::test]
async fn quickack_is_rearmed_after_a_read() {
    let (server, _client) = pair().await;
    let sock = socket2::SockRef::from(&server);
    sock.set_tcp_quickack(false).unwrap();
    rearm_quickack(&server);
    assert!(sock.tcp_quickack().unwrap(), "TCP_QUICKACK set again after a read");
}
