"""Operations: metrics, traces, structured logs and the endpoints that serve them."""
