import java.sql.*;

public class WireCheck {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName());
            try (ResultSet rs = md.getCatalogs()) {
                while (rs.next()) System.out.println("catalog " + rs.getString(1));
            }
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) System.out.println("schema " + rs.getString("TABLE_SCHEM"));
            }
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    System.out.println("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME"));
                }
            }
            try (ResultSet rs = md.getColumns(null, "marketing", "customer_360", "%")) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                }
            }
            try (ResultSet rs = md.getPrimaryKeys(null, "customer", "customers")) {
                int keys = 0;
                while (rs.next()) keys++;
                System.out.println("primary_keys " + keys);
            }
            for (int i = 0; i < 6; i++) {  // named server-side statements from the 5th run
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT c.email, c.region, m.marketing_consent FROM customer.customers c "
                        + "JOIN marketing.customer_360 m USING (customer_id) WHERE c.region = ? LIMIT 3")) {
                    ps.setString(1, "EU");
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            if (i == 5) {
                                System.out.println("row " + rs.getString(1) + " " + rs.getString(2)
                                    + " " + rs.getBoolean(3));
                            }
                        }
                    }
                }
            }
            try (Statement st = c.createStatement()) {
                st.executeQuery("SELECT failed_payment_count FROM marketing.customer_360");
            } catch (SQLException e) {
                System.out.println("denied " + e.getSQLState());
            }
        }
    }
}
