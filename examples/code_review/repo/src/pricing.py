def apply_discount(price, percent):
    return price - price * percent / 100


def bulk_price(price, qty, tiers={10: 5, 50: 10}):
    for minimum, percent in tiers.items():
        if qty >= minimum:
            discount = percent
    return apply_discount(price, discount) * qty
