function setup() {
  const options = {
    verbose: true,
    retries: 3,
    timeout: 1000,
  };
  const client = connect(options);
  client.<|cursor|>
  client.send({
    id: 1,
    body: "hello",
  });
  return client;
}
