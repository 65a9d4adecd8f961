/*
 * meshgov's guard for a Spark session (spark.sql.extensions=meshgov.spark.MeshgovGuardExtension).
 *
 * A check rule run on every analysed plan of every session of the JVM (a Spark Connect server's
 * sessions included): only read-only query plans over tables of the session catalogue pass.
 * Refused, naming the construct and quoting no value: every command (SET, ADD JAR, DDL, CACHE,
 * INSERT, DECLARE...), file sources not in the catalogue (parquet.`/path`, spark.read.*), other
 * data sources, input_file_name() and friends, the _metadata file column, reflection, Java/Scala
 * UDFs, Python UDFs other than meshgov_hash, and any plan while a locked runtime setting differs
 * from its locked value (a Connect client can change runtime settings without SQL).
 *
 * Loading (meshgov load over Spark Connect) needs three commands, accepted only in these shapes:
 * CREATE SCHEMA IF NOT EXISTS without properties (no location), DROP TABLE, and saveAsTable of
 * rows the client sent (a LocalRelation) into a managed Parquet table (no path, no location, not
 * appending). Everything else that is not a query is refused.
 *
 * Built by `meshgov spark guard-jar` with javac against pyspark's jars; no Scala compiler needed:
 * Scala 2.13 functions are implemented through scala.runtime.AbstractFunction1.
 */
package meshgov.spark;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.expressions.AttributeReference;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.internal.SQLConf;
import scala.Function1;
import scala.collection.Iterator;
import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

public final class MeshgovGuardExtension extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {

    /** Analysed-plan nodes a read-only query is made of (by simple class name). */
    static final Set<String> QUERY_NODES = new HashSet<>(Arrays.asList(
        "Project", "Filter", "Aggregate", "Join", "SubqueryAlias", "Sort", "GlobalLimit",
        "LocalLimit", "Offset", "Union", "Distinct", "Intersect", "Except", "WithCTE",
        "CTERelationDef", "CTERelationRef", "OneRowRelation", "LocalRelation", "Range", "Generate",
        "Window", "Deduplicate", "Expand", "Tail", "View", "LogicalRelation", "Sample",
        "Repartition", "RepartitionByExpression", "ResolvedHint", "LateralJoin", "LogicalRDD",
        "WithWindowDefinition"));

    /** Expressions that reach outside the row: files, reflection, identity, user code. */
    static final Set<String> DENIED_EXPRESSIONS = new HashSet<>(Arrays.asList(
        "InputFileName", "InputFileBlockStart", "InputFileBlockLength", "CallMethodViaReflection",
        "TryReflect", "CurrentUser", "ScalaUDF", "ScalaUDAF", "ScalaAggregator", "HiveSimpleUDF",
        "HiveGenericUDF", "HiveUDAFFunction", "HiveGenericUDTF", "UserDefinedGenerator"));

    /** Python UDF classes; only meshgov's keyed hash may run. */
    static final Set<String> PYTHON_UDFS = new HashSet<>(Arrays.asList(
        "PythonUDF", "PythonUDAF", "PythonUDTF", "UnresolvedPolymorphicPythonUDTF"));

    static final String HASH_FUNCTION = "meshgov_hash";
    static final String METADATA_COLUMN = "_metadata";
    static final String METADATA_KEY = "__metadata_col";

    /** Runtime settings that keep SQL inside the data (the static ones cannot change). */
    static final String[][] LOCKED = {
        {"spark.sql.runSQLOnFiles", "false"},
        {"spark.sql.variable.substitute", "false"},
        {"spark.sql.scripting.enabled", "false"},
        {"spark.sql.parser.quotedRegexColumnNames", "false"},
        {"spark.sql.ansi.enabled", "true"},
    };

    /** The table an accepted saveAsTable is writing, on the thread running it. */
    private static final ThreadLocal<String> LOADING = new ThreadLocal<>();

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectCheckRule(new AbstractFunction1<SparkSession, Function1<LogicalPlan, BoxedUnit>>() {
            @Override
            public Function1<LogicalPlan, BoxedUnit> apply(SparkSession session) {
                return new Check();
            }
        });
        return BoxedUnit.UNIT;
    }

    static final String CONDITION = "MESHGOV_GUARD_REFUSED";

    /** An analysis error naming the construct (a class or setting name, never a value). */
    static RuntimeException refused(String what) {
        throw MeshgovGuardExtension.<RuntimeException>sneaky(new AnalysisException(
            "[" + CONDITION + "] the meshgov guard refuses " + what
                + "; this server runs only read-only queries on catalogue tables",
            scala.Option.empty(), scala.Option.empty(), scala.Option.empty(),
            scala.Option.apply(CONDITION),
            scala.collection.immutable.Map$.MODULE$.<String, String>empty(),
            new org.apache.spark.QueryContext[0]));
    }

    /** Scala code throws AnalysisException (a checked exception in Java) unchecked; so do we. */
    @SuppressWarnings("unchecked")
    static <T extends Throwable> T sneaky(Throwable error) throws T {
        throw (T) error;
    }

    /** The check rule: throws for any plan that is not a read-only query over catalogue tables. */
    static final class Check extends AbstractFunction1<LogicalPlan, BoxedUnit> {
        @Override
        public BoxedUnit apply(LogicalPlan plan) {
            SQLConf conf = SQLConf.get();
            for (String[] setting : LOCKED) {
                String actual = conf.getConfString(setting[0], setting[1]);
                if (!setting[1].equalsIgnoreCase(actual.trim())) {
                    throw refused("changed setting " + setting[0]);
                }
            }
            if (Load.accepts(plan)) {
                return BoxedUnit.UNIT;
            }
            plan.foreachWithSubqueries(new AbstractFunction1<LogicalPlan, BoxedUnit>() {
                @Override
                public BoxedUnit apply(LogicalPlan node) {
                    checkNode(node);
                    return BoxedUnit.UNIT;
                }
            });
            return BoxedUnit.UNIT;
        }
    }

    static void checkNode(LogicalPlan node) {
        String name = node.getClass().getSimpleName();
        if (!QUERY_NODES.contains(name)) {
            throw refused(name.isEmpty() ? node.getClass().getName() : name);
        }
        if (node instanceof org.apache.spark.sql.execution.datasources.LogicalRelation) {
            org.apache.spark.sql.execution.datasources.LogicalRelation relation =
                (org.apache.spark.sql.execution.datasources.LogicalRelation) node;
            if (relation.catalogTable().isEmpty()) {
                throw refused("a data source that is not a table of the catalogue");
            }
        }
        Iterator<Expression> expressions = node.expressions().iterator();
        while (expressions.hasNext()) {
            expressions.next().foreach(new AbstractFunction1<Expression, BoxedUnit>() {
                @Override
                public BoxedUnit apply(Expression expression) {
                    checkExpression(expression);
                    return BoxedUnit.UNIT;
                }
            });
        }
        Iterator<org.apache.spark.sql.catalyst.expressions.Attribute> output = node.output().iterator();
        while (output.hasNext()) {
            checkExpression(output.next());
        }
    }

    static void checkExpression(Expression expression) {
        String name = expression.getClass().getSimpleName();
        if (DENIED_EXPRESSIONS.contains(name)) {
            throw refused(name);
        }
        if (PYTHON_UDFS.contains(name)) {
            boolean hash = expression instanceof org.apache.spark.sql.catalyst.expressions.PythonUDF
                && HASH_FUNCTION.equals(((org.apache.spark.sql.catalyst.expressions.PythonUDF) expression)
                    .name().toLowerCase(Locale.ROOT));
            if (!hash) {
                throw refused("a Python function");
            }
        }
        if (expression instanceof AttributeReference) {
            AttributeReference attribute = (AttributeReference) expression;
            if (attribute.name().equalsIgnoreCase(METADATA_COLUMN)
                    || attribute.metadata().contains(METADATA_KEY)) {
                throw refused("the _metadata column");
            }
        }
    }

    /** The commands meshgov load sends, in the only shapes accepted. */
    static final class Load {
        static boolean accepts(LogicalPlan plan) {
            if (plan instanceof org.apache.spark.sql.catalyst.plans.logical.CreateNamespace) {
                org.apache.spark.sql.catalyst.plans.logical.CreateNamespace create =
                    (org.apache.spark.sql.catalyst.plans.logical.CreateNamespace) plan;
                return create.ifNotExists() && create.properties().isEmpty();
            }
            if (plan instanceof org.apache.spark.sql.catalyst.plans.logical.DropTable) {
                return true;  // a table (DROP VIEW is another plan); meshgov load drops first
            }
            // saveAsTable: the API's command, accepted in shape, runs two commands of its own on
            // the same thread (each analysed and checked again): accepted for that table only.
            if (plan instanceof org.apache.spark.sql.execution.command.SaveAsV1TableCommand) {
                org.apache.spark.sql.execution.command.SaveAsV1TableCommand save =
                    (org.apache.spark.sql.execution.command.SaveAsV1TableCommand) plan;
                if (!savesClientRows(save.tableDesc(), save.mode(), save.query())) {
                    return false;
                }
                LOADING.set(key(save.tableDesc()));
                return true;
            }
            String loading = LOADING.get();
            if (loading == null) {
                return false;
            }
            if (plan instanceof org.apache.spark.sql.execution.command.CreateDataSourceTableAsSelectCommand) {
                org.apache.spark.sql.execution.command.CreateDataSourceTableAsSelectCommand save =
                    (org.apache.spark.sql.execution.command.CreateDataSourceTableAsSelectCommand) plan;
                return loading.equals(key(save.table()))
                    && savesClientRows(save.table(), save.mode(), save.query());
            }
            if (plan instanceof org.apache.spark.sql.execution.datasources.InsertIntoHadoopFsRelationCommand) {
                org.apache.spark.sql.execution.datasources.InsertIntoHadoopFsRelationCommand insert =
                    (org.apache.spark.sql.execution.datasources.InsertIntoHadoopFsRelationCommand) plan;
                LOADING.remove();  // the last step of the load
                // The write of a new table names no catalogue table: its path must be the
                // loading table's managed location in the warehouse.
                return insert.catalogTable().isEmpty()
                    && insert.outputPath().toUri().getPath().equals(managedPath(loading))
                    && clientRows(insert.query());
            }
            return false;
        }

        /** Where the session catalogue puts a managed table (warehouse/db.db/table). */
        static String managedPath(String key) {
            String[] parts = key.split("\\.", 2);
            String warehouse = new org.apache.hadoop.fs.Path(SQLConf.get().warehousePath())
                .toUri().getPath().replaceAll("/+$", "");
            return parts[0].equals("default")
                ? warehouse + "/" + parts[1]
                : warehouse + "/" + parts[0] + ".db/" + parts[1];
        }

        /** database.table, lower-cased (the catalogue part differs between the steps). */
        static String key(org.apache.spark.sql.catalyst.catalog.CatalogTable table) {
            return (table.identifier().database().getOrElse(() -> "default") + "."
                + table.identifier().table()).toLowerCase(Locale.ROOT);
        }

        /** A managed Parquet table (no path, no location, no buckets) of rows the client sent. */
        static boolean savesClientRows(
                org.apache.spark.sql.catalyst.catalog.CatalogTable table,
                org.apache.spark.sql.SaveMode mode,
                LogicalPlan query) {
            Map<String, String> options =
                scala.jdk.javaapi.CollectionConverters.asJava(table.storage().properties());
            return table.storage().locationUri().isEmpty()
                && options.keySet().stream().noneMatch(k -> k.equalsIgnoreCase("path"))
                && table.provider().isDefined()
                && table.provider().get().equalsIgnoreCase("parquet")
                && table.bucketSpec().isEmpty()
                && mode != org.apache.spark.sql.SaveMode.Append
                && clientRows(query);
        }

        /** Rows sent by the client: a LocalRelation, possibly under projections of its columns. */
        static boolean clientRows(LogicalPlan plan) {
            LogicalPlan node = plan;
            while (node instanceof org.apache.spark.sql.catalyst.plans.logical.Project
                    || node instanceof org.apache.spark.sql.catalyst.plans.logical.SubqueryAlias) {
                Iterator<Expression> expressions = node.expressions().iterator();
                while (expressions.hasNext()) {
                    Expression expression = expressions.next();
                    if (!(expression instanceof org.apache.spark.sql.catalyst.expressions.Attribute
                            || expression instanceof org.apache.spark.sql.catalyst.expressions.Alias
                               && expression.children().head()
                                   instanceof org.apache.spark.sql.catalyst.expressions.Attribute)) {
                        return false;
                    }
                }
                node = node.children().head();
            }
            return node instanceof org.apache.spark.sql.catalyst.plans.logical.LocalRelation;
        }
    }
}
