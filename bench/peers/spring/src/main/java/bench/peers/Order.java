package bench.peers;

/** The order every contender decodes (the same fields as peers::Order in C++ and Order in Python). */
public record Order(long id, String customer, String item, int quantity, double amount, String note) {

  /** The order with this id, its fields derived from the id (~100 bytes of JSON). */
  static Order of(long id) {
    return new Order(id, String.format("c-%05d", id % 100000), String.format("sku-%04d", id % 10000),
        (int) (1 + id % 5), (100 + id % 90000) / 4.0, "xxxxxxxx");
  }
}
